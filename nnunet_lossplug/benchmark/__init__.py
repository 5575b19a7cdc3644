"""``nnunet-lossplug benchmark``: which trainer (loss) for my dataset, on one matched short schedule.

Small modules, in the order a benchmark uses them:

- :mod:`.plan` — the trainers, seeds and schedule (budget presets) and the runs that follow;
- :mod:`.short_trainers` — trainer files running any trainer (the plugin's, a user's, nnU-Net's) on a short,
  seeded schedule;
- :mod:`.owned_folder` — the report folder, and deleting only what the command made there;
- :mod:`.held_out` — the dataset's folders and which cases are scored;
- :mod:`.environment` — the child processes' environment (``OMP_WAIT_POLICY=PASSIVE``, the seed);
- :mod:`.postprocessing` — nnU-Net's own post-processing, chosen on the validation cases;
- :mod:`.running` — one run through nnU-Net's commands, and reusing finished runs;
- :mod:`.report` and :mod:`.figure` — the table, the paired test and the figure;
- :mod:`.execute` — :func:`~nnunet_lossplug.benchmark.execute.run_benchmark`, the whole benchmark.
"""
