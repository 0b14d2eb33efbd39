"""``python -m offchain ...``: see ``offchain.cli``."""

from offchain.cli import main

if __name__ == "__main__":
    main()
