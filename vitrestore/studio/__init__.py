"""The local web studio (`vitrestore studio`): server.py holds the application, http.py serves
static/ and the JSON API, store.py keeps the uploads, options.py checks the jobs, jobs.py runs them."""
