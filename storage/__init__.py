"""storage: volumes, object stores and deduplicated backups on one Linux host.

    import storage
    with storage.open() as st:             # embedded defaults, or a TOML config path
        vol = st.volumes.create("db1", "10G")
        dev = st.volumes.attach("db1")      # -> "/dev/loop3"
"""

from storage.config import Settings, load_settings
from storage.service import Storage, open

__version__ = "0.1.0"
__all__ = ["Settings", "Storage", "load_settings", "open", "__version__"]
