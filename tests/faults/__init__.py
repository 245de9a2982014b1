"""The fault suite: real daemons killed, mail and database servers stopped, while mail flows;
afterwards no mail may be lost or duplicated. `bench/faults.py` runs it at full size."""
