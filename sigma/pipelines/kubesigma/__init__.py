"""sigma-cli plugin: `sigma convert -t lucene -p kubesigma rule.yml` gives queries over kubesigma's alert fields.

sigma-cli discovers pipelines in the `sigma.pipelines.*` namespace; the pipeline itself lives in
kubesigma.detections.mapping.
"""

from kubesigma.detections.mapping import evaluation_pipeline, kubesigma_pipeline

pipelines = {
    "kubesigma": kubesigma_pipeline,
    "kubesigma_raw": evaluation_pipeline,
}

__all__ = ["evaluation_pipeline", "kubesigma_pipeline", "pipelines"]
