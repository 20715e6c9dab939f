"""The main job: run every step notebook in order (`run`), the HTML report (`report`), the export bundle
(`bundle`) and the command line (`cli`)."""

from slmlab.pipeline.run import PipelineResult, StepRun, execute_notebook, list_notebooks, run_pipeline

__all__ = ["PipelineResult", "StepRun", "execute_notebook", "list_notebooks", "run_pipeline"]
