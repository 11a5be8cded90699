"""SQuAD data in, answers and scores out, one module per concern; `utils_qa.py` is the face that re-exports them."""
