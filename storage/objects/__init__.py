"""Object stores by name or URL (``st.objects``): ``service``, ``urls`` (store URLs), ``transfer``
(upload/download of many files). Drivers (dir, Swift, S3) come from ``storage.registry``."""
