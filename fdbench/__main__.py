from fdbench.cli import main

raise SystemExit(main())
