# SPDX-License-Identifier: GPL-2.0
# Sphinx configuration of the nft-tproxy documentation (make docs).

project = 'nft-tproxy'
copyright = 'the nft-tproxy authors'
master_doc = 'index'
exclude_patterns = ['_build']
highlight_language = 'none'
html_theme = 'alabaster'
html_show_sourcelink = False
