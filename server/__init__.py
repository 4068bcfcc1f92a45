"""Serving: the engine launcher (`vllm serve` on GPU, `transformers serve` on CPU), the
OpenAI-compatible FastAPI gateway in front of it, the RunPod serverless job logic and a terminal chat.

    socratic serve --model runs/tiny-tutor/merged      # engine + gateway on 127.0.0.1:8000
    socratic chat --url http://127.0.0.1:8000

The project never imports vllm: the engine is a separate OpenAI-compatible process reached over HTTP.
"""
