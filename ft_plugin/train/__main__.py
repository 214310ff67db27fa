"""``accelerate launch -m ft_plugin.train RECIPE [--set K=V]…``: the command line's train.

An entry point above every layer (like ``ft_plugin/__main__.py``): the train package
itself never imports the command line.
"""

import sys

from ft_plugin.cli.train import main

if __name__ == "__main__":
    sys.exit(main())
