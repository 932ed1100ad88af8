"""tinygpt.finetune: a pretrained GPT or LSTM run fine-tuned into a text classifier run.

run.py holds the loop, its config and the metrics; data.py loads, splits and encodes labelled
examples; state.py saves and resumes a run mid-way. `tinygpt finetune` (cli.py) calls `finetune`.
Not here: the classifier model (models/classifier.py) or language-model training (tinygpt.train).
"""

from tinygpt.finetune.run import (FinetuneConfig, FinetuneResult, classification_report, evaluate_classifier,
                                  finetune, pooled_features, predict, predict_from_features)

__all__ = ["FinetuneConfig", "FinetuneResult", "finetune", "evaluate_classifier", "classification_report",
           "predict", "predict_from_features", "pooled_features"]
