from gridvend.cli import main

raise SystemExit(main())
