from purejaxspi.cli import main

raise SystemExit(main())
