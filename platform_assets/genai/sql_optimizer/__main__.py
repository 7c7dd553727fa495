from platform_assets.genai.sql_optimizer.cli import main

raise SystemExit(main())
