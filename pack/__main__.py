import sys

from pack.build import main

sys.exit(main())
