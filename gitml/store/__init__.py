"""The content-addressed artifact store: objects, chunks, trees and remotes.

This layer knows nothing about Git or the command line.
"""
