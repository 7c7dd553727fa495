from platform_assets.genai.docgen.cli import main

raise SystemExit(main())
