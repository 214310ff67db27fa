"""`python -m ft_plugin` is `ft-plugin`."""

from ft_plugin.cli import main

raise SystemExit(main())
