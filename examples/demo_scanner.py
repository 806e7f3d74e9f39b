# Demo, instance 2: actively scan, print each advertiser found (with its scan response).
import bluetooth
import time

_IRQ_SCAN_RESULT = 5
_IRQ_SCAN_DONE = 6
ADV_TYPES = {0: "ADV_IND", 1: "ADV_DIRECT_IND", 2: "ADV_SCAN_IND", 3: "ADV_NONCONN_IND", 4: "SCAN_RSP"}


def fields(payload):
    # Yields (ad_type, value) from advertising data.
    i = 0
    while i + 1 < len(payload):
        n = payload[i]
        if n == 0 or i + 1 + n > len(payload):
            break
        yield payload[i + 1], payload[i + 2 : i + 1 + n]
        i += 1 + n


seen: dict = {}
done = False


def irq(event, data):
    global done
    if event == _IRQ_SCAN_RESULT:
        addr_type, addr, adv_type, rssi, adv_data = data
        key = (bytes(addr), adv_type)
        if key in seen:
            return
        seen[key] = True
        info = []
        for ad_type, value in fields(bytes(adv_data)):
            if ad_type == 0x09:
                info.append("name=%s" % value.decode())
            elif ad_type == 0xFF:
                info.append("manufacturer=%s" % bytes(value))
        print(
            "scanner: found",
            ":".join("%02x" % b for b in bytes(addr)),
            ADV_TYPES.get(adv_type, adv_type),
            "rssi",
            rssi,
            " ".join(info),
        )
    elif event == _IRQ_SCAN_DONE:
        done = True


ble = bluetooth.BLE()
ble.irq(irq)
ble.active(True)
print("scanner: scanning for 3 s")
ble.gap_scan(3000, 30_000, 30_000, True)
while not done:
    time.sleep_ms(50)
print("scanner: scan done,", len(seen), "distinct reports")
ble.active(False)
