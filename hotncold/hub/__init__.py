"""A finished run on the Hugging Face Hub: the flat table and the push."""
