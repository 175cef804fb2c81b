"""``python -m refcnn``: the same command line as the ``refcnn`` script."""

from refcnn.cli import main

raise SystemExit(main())
