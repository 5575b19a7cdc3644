import sys

from nnunet_lossplug.cli import main

sys.exit(main())
