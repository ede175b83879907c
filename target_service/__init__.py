"""The reference inference service that model-chaos tests, and its model publisher.

``python -m target_service`` serves the models of a directory over HTTP with one
of three loaders (naive, basic, hardened). ``python -m target_service.publish``
writes a model file and its manifest atomically.
"""
