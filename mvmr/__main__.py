from mvmr.cli import main

raise SystemExit(main())
