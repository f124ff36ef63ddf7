import sys

from avvp.cli import main

sys.exit(main())
