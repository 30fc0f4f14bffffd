"""Process reward models: one interface (`base.PRM.score`), chosen by `prm.name`.

- `registry`: which class each `prm.name` is, what it reads, and the `prm` settings' rules;
- `base`: the interface, the prefix cache that scores only new steps, `aggregate`;
- `formats`: the published PRMs' input formats, token for token (the Qwen PRM's among them);
- `generative`, `heads`, `self_certainty`, `equation_checker`: the implementations;
- `loading`: PRM engine settings and tokenizers;
- `http_server`, `http_client`: one PRM served over HTTP to many runs, and its client.
"""
