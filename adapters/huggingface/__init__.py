"""What the adapters that run Hugging Face models (``adapters.wuerstchen``, ``adapters.marian``)
share: finding a model on disk or in the hub cache, choosing torch's device, dtype and threads, and
building a tiny test model once."""
