"""`python -m alphawatch` is the same as the `alphawatch` command."""

from alphawatch.cli import main

raise SystemExit(main())
