"""GenAI helpers of the platform. The LLM explains and suggests; it never decides.

- `llm`: the chat-model factory (Gemini through `langchain-google-vertexai`, built lazily),
  the provider choice (`LLM_PROVIDER`), structured calls with a hard deadline, and the label
  every output carries (`DETERMINISTIC_LABEL` when no LLM wrote it).
- `prompting`: how untrusted data values enter a prompt (quoted JSON in delimited blocks).
- `quality_agent`: the data-quality narrator (structured `Narrative`) and its deterministic
  fallback.
- `sql_optimizer`: findings, cost and verified rewrites for BigQuery SQL (`sql-optimizer`).
- `docgen`: docs/ generated from the code, the dbt project and the Dagster definitions.

Nothing here imports Vertex AI or reaches the network at import time.
"""
