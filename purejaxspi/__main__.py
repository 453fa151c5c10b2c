"""`python -m purejaxspi`: the command line, as `purejaxspi`."""

from purejaxspi.cli import main

raise SystemExit(main())
