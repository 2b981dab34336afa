/* metadata_p2p.c */
