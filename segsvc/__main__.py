"""`python -m segsvc` is the same as the `segsvc` console script."""

from segsvc.cli import main

raise SystemExit(main())
