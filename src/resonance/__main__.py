from resonance.cli import main

raise SystemExit(main())
