import sys

from rmqm.cli.study_cmd import main

if __name__ == "__main__":
    sys.exit(main())
