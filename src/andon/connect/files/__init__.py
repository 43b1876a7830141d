"""History import from CSV and Parquet files with a column mapping (registered as ``csv``;
Parquet files are recognised by their ``.parquet`` suffix).

.. code-block:: yaml

    - type: csv
      name: historian-export
      path: /data/export/*.csv          # glob; files are read in name order
      timestamp: time                    # column; unit s | ms | us | iso
      timestamp_unit: iso
      columns: {T_spindle: site/hall/l1/cnc1/spindle_temp}   # wide: column → signal
      # or long format:
      # signal_column: tag
      # value_column: value
      # signals: {TT-101: site/hall/l1/oven/temp}           # tag → signal (others refused)

The cursor is ``<file>:<rows done>``, so an import interrupted by a crash resumes exactly
after the last batch in the edge buffer. Rows with an unparsable timestamp or a value that is
not a finite number are refused and counted.
"""

from __future__ import annotations

from andon.connect.files.importer import MANIFEST, FileConfig, FileConnector, read_table
from andon.connect.registry import ConnectorType, register

__all__ = ["MANIFEST", "FileConfig", "FileConnector", "read_table"]

register(ConnectorType(MANIFEST, FileConfig, FileConnector))
