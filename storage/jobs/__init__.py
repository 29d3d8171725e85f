"""Long operations run in threads and recorded in the catalog (``st.jobs``): ``service.JobService``."""
