"""shared.report: rows into tables, figures and generated report blocks.

report    generated blocks of an iteration report, refreshed from results (and checked);
          iteration_module loads a module beside an iteration's notebooks
reproduction  the main job's closing table: this run's headline metrics against the earlier rows
plots     seaborn figures saved to res/
tables    speed tables, the budget verdict, line fits, markdown tables
"""
