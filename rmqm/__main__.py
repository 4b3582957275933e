"""``python -m rmqm``: the command line of :mod:`rmqm.cli` (``python -m rmqm --help``)."""

from rmqm.cli.main import main

if __name__ == "__main__":
    main()
