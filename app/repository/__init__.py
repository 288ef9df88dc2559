"""The model repository: the manifest contract and the store that serving, training and jobs share."""
