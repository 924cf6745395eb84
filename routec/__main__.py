"""``python -m routec`` is the same as the ``routec`` console script."""
from routec.cli import main

raise SystemExit(main())
