"""`python -m segsvc` is the same as the `segsvc` console script."""

from segsvc.entry_point import main

raise SystemExit(main())
