"""Tools the template agents call: calculator, SQL, retrieval, constraint checkers, sandbox."""
