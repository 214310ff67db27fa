"""The Space's Train tab without Gradio: data step, recipe, and training jobs.

- :mod:`.data`: read an upload (any common encoding), map its columns onto the
  template's fields, preview rows as trained, run the cleaning and show its report.
- :mod:`.recipe`: the page's choices as the builtin recipe they start from, resolved,
  with the Space's caps checked.
- :mod:`.jobs`: one ``ft-plugin train`` child process at a time, in its own process
  group, the others queued; status read from the run directory (``status.json``,
  ``progress.jsonl``), Stop (SIGTERM: checkpoint, then exit), Resume, and history.
- :mod:`.job_progress`: a job's live numbers (loss series, speed, time left) and its
  log's last lines and failure line.
- :mod:`.service`: the owner's drafts and jobs behind the access check.

The Space never imports the trainer: a job is the command line a user would type.
"""
