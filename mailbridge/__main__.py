from mailbridge.cli import main

raise SystemExit(main())
