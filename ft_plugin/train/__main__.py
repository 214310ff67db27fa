"""``accelerate launch -m ft_plugin.train RECIPE [--set K=V]…``: the same as ``ft-plugin train``."""

import sys

from ft_plugin.train.command import main

if __name__ == "__main__":
    sys.exit(main())
