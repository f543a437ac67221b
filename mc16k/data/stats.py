"""``python -m mc16k.data.stats data=both``: the documented command for paper Table 1 (``mc16k.tasks.data_stats``)."""

from mc16k.tasks.data_stats import main

if __name__ == "__main__":
    main()
