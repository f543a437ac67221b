"""``python -m mc16k.models.export <run_dir>/adapter``: the documented command (``mc16k.tasks.export``)."""

from mc16k.tasks.export import main

if __name__ == "__main__":
    main()
