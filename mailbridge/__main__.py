from mailbridge.cli.main import main

raise SystemExit(main())
