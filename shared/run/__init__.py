"""shared.run: running an iteration: parameters, experiments, process lifetime, notebooks, pre-flight, the runbook, the GPU plan; may import every wing.

params    notebook parameters from papermill: -p models NAME is a one-item list
experiment  run a list of configurations into a table: failures recorded, done ones (same
          settings_hash) skipped; the speed notebook's configurations expanded once
lifetime  a run's processes end with the run, whatever signal ends it
notebooks  a paired notebook runs only in sync with its .py, and only with parameters it has
preflight  can this machine run the job? every configuration checked before the first starts
runbook   the main job: an iteration's notebooks under papermill, then its report
gpuplan   the plan before a GPU run: predicted memory and time of each configuration, and fits
"""
