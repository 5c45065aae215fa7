"""Files and folders in, files out: an application of the models, beside the CLI and the
studio. `plan.py` turns the user's inputs into jobs (no model, no pixels), `run.py` runs them
through a threaded read / model / write pipeline, `report.py` holds the results and the JSON
report."""
