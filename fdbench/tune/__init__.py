"""``fdbench tune``: every cache at its fastest setting for a quality target (issue 16).

``targets`` parses ``METRIC<=X``; ``knobs`` gives each method's main knob (a ladder from
mild to aggressive) and small grid; ``search`` is the bisection and confirmation on an
abstract trial; ``seeds`` keeps calibration and validation noise apart; ``store`` records
every trial (resumable, one set of settings per file); ``runner`` runs trials on a model;
``suite`` tunes several methods; ``table`` writes the table, figure and JSON. Only
``targets``, ``knobs``, ``search``, ``seeds`` and ``store`` are imported by the CLI before
a checkpoint is loaded."""
