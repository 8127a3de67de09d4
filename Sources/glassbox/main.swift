import GlassboxCLI

Glassbox.main()
