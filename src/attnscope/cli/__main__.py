from attnscope.cli import main

raise SystemExit(main())
