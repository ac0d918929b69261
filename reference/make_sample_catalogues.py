"""Write the sample treatment-pool catalogues in reference/catalogues (deterministic).

Not real catalogue data: a realistic shape (thousands of drugs, services and materials with
甲/乙/丙 classes, 乙 self-pay-first shares, price caps) built from common generic drug and
service names, varied per pool the way provincial catalogues differ. Codes have the national
shape a HIS maps its items to: a Western drug X + ATC level 4 + generic, dosage form, spec and
maker (23 characters, like XJ01CAA040A001010102699), a service item 15 digits, a consumable C +
19 digits. `former_code` is the item's code in version 2024.1 (still accepted). Run from the
repo root:

    python3 reference/make_sample_catalogues.py
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

POOLS = ("371525", "230800", "360400", "510900", "440100", "999903", "999901")
VERSION = "2024.2"
HERE = Path(__file__).parent / "catalogues"

DRUGS = [
    "阿莫西林", "头孢克肟", "头孢呋辛", "头孢曲松", "左氧氟沙星", "阿奇霉素", "克拉霉素", "甲硝唑", "阿司匹林", "氯吡格雷",
    "阿托伐他汀", "瑞舒伐他汀", "辛伐他汀", "二甲双胍", "格列美脲", "阿卡波糖", "胰岛素", "甘精胰岛素", "硝苯地平", "氨氯地平",
    "缬沙坦", "厄贝沙坦", "氯沙坦", "美托洛尔", "比索洛尔", "卡托普利", "依那普利", "呋塞米", "螺内酯", "氢氯噻嗪",
    "奥美拉唑", "泮托拉唑", "雷贝拉唑", "兰索拉唑", "多潘立酮", "蒙脱石", "布洛芬", "对乙酰氨基酚", "双氯芬酸", "塞来昔布",
    "地塞米松", "泼尼松", "甲泼尼龙", "氯雷他定", "西替利嗪", "沙丁胺醇", "布地奈德", "孟鲁司特", "氨溴索", "乙酰半胱氨酸",
    "肝素", "低分子肝素", "华法林", "利伐沙班", "硝酸甘油", "单硝酸异山梨酯", "地高辛", "胺碘酮", "葡萄糖", "氯化钠",
    "氯化钾", "碳酸氢钠", "维生素C", "维生素B1", "甲钴胺", "叶酸", "硫酸亚铁", "碳酸钙", "骨化三醇", "阿法骨化醇",
    "左甲状腺素", "甲巯咪唑", "丙戊酸钠", "卡马西平", "左乙拉西坦", "奥氮平", "利培酮", "舍曲林", "帕罗西汀", "艾司唑仑",
    "阿普唑仑", "吗啡", "曲马多", "利多卡因", "丙泊酚", "咪达唑仑", "万古霉素", "美罗培南", "亚胺培南", "哌拉西林他唑巴坦",
    "氟康唑", "伏立康唑", "阿昔洛韦", "奥司他韦", "恩替卡韦", "替诺福韦", "紫杉醇", "顺铂", "卡铂", "奥沙利铂",
]
# ATC level 4 of each drug above, in order (the Western drug code's second part).
ATC = ("J01CA J01DD J01DC J01DD J01MA J01FA J01FA P01AB B01AC B01AC C10AA C10AA C10AA A10BA A10BB A10BF A10AB A10AE "
       "C08CA C08CA C09CA C09CA C09CA C07AB C07AB C09AA C09AA C03CA C03DA C03AA A02BC A02BC A02BC A02BC A03FA A07BC "
       "M01AE N02BE M01AB M01AH H02AB H02AB H02AB R06AX R06AE R03AC R03BA R03DC R05CB R05CB B01AB B01AB B01AA B01AF "
       "C01DA C01DA C01AA C01BD B05BA B05XA B05XA B05XA A11GA A11DA B03BA B03BB B03AA A12AA A11CC A11CC H03AA H03BB "
       "N03AG N03AF N03AX N05AH N05AX N06AB N06AB N05CD N05BA N02AA N02AX N01BB N01AX N05CD J01XA J01DH J01DH J01CR "
       "J02AC J02AC J05AB J05AH J05AF J05AF L01CD L01XA L01XA L01XA").split()
# The section of the national service-item code (综合, 诊断, 治疗, 手术 ...) by the service's place above.
SERVICE_SECTIONS = ["11", "12", "11", "12", "12", "25", "25", "25", "25", "25", "22", "21", "21", "21", "21",
                    "22", "31", "31", "31", "33", "33", "33", "33", "33", "32", "32", "33", "33", "12", "34"]
FORMS = [("片", "0.25g*24片"), ("胶囊", "0.5g*12粒"), ("注射液", "2ml:10mg"), ("缓释片", "30mg*7片"),
         ("颗粒", "10g*10袋"), ("注射用粉针", "1g"), ("分散片", "0.1g*20片"), ("口服溶液", "100ml")]
SERVICES = [
    ("床位费", 30, 120), ("护理费", 15, 60), ("诊查费", 10, 50), ("静脉输液", 5, 20), ("肌肉注射", 3, 10),
    ("血常规", 15, 30), ("尿常规", 8, 20), ("肝功能", 40, 120), ("肾功能", 30, 90), ("血糖测定", 5, 15),
    ("心电图", 20, 40), ("胸部X线", 50, 120), ("CT平扫", 150, 400), ("CT增强", 300, 700), ("MRI平扫", 400, 900),
    ("彩色多普勒超声", 100, 250), ("胃镜检查", 200, 500), ("肠镜检查", 250, 600), ("血液透析", 350, 500), ("清创缝合", 50, 300),
    ("阑尾切除术", 800, 2000), ("胆囊切除术", 1500, 4000), ("剖宫产术", 1500, 3500), ("髋关节置换术", 4000, 9000), ("冠脉造影", 1500, 3000),
    ("经皮冠状动脉支架植入术", 3000, 6000), ("白内障超声乳化摘除术", 1200, 2500), ("全身麻醉", 500, 1500), ("重症监护", 500, 1200), ("康复训练", 30, 120),
]
MATERIALS = [("冠脉支架", 8000, 20000), ("人工髋关节", 7000, 30000), ("人工晶体", 800, 6000), ("一次性输液器", 3, 10),
             ("留置针", 20, 60), ("吻合器", 1500, 5000), ("骨科钢板", 2000, 8000), ("导尿管", 10, 40)]


def rows_for(pool: str) -> list[dict[str, str]]:
    base = random.Random(20240101)  # the same items in every pool, as the national codes are
    local = random.Random(int(pool))  # each pool's own classes, shares and caps
    yi_share = local.choice(["5", "10", "10", "15", "20"])
    rows = []
    n = 0
    assert len(ATC) == len(DRUGS) and len(SERVICE_SECTIONS) == len(SERVICES)
    for generic, name in enumerate(DRUGS, 1):
        for form_no, (form, spec) in enumerate(FORMS, 1):
            for maker in range(3):
                n += 1
                cls = base.choices(["甲", "乙", "丙"], weights=[40, 45, 15])[0]
                if cls == "乙" and local.random() < 0.06:
                    cls = local.choice(["甲", "丙"])  # provinces differ on a few items
                rows.append({
                    "item_code": f"X{ATC[generic - 1]}A{generic:03d}A{form_no:03d}{form_no:02d}01{1000 + 7 * maker + generic:05d}",
                    "former_code": f"X{n:05d}{form.encode('utf-8').hex()[:4].upper()}{maker:02d}",
                    "item_name": f"{name}{form} {spec} (厂家{maker + 1})",
                    "item_kind": "DRUG",
                    "item_class": cls,
                    "self_pay_first_pct": yi_share if cls == "乙" else "0",
                    "price_cap_yuan": "",
                    "over_cap_rule": "SELF_PAY",
                    "essential_drug": "1" if cls == "甲" and base.random() < 0.5 else "0",
                })
    for place, (name, low, high) in enumerate(SERVICES):
        for variant in range(12):
            n += 1
            cap = base.randint(low * 100, high * 100) * (100 + local.randint(-10, 10)) // 100
            cls = base.choices(["甲", "乙", "丙"], weights=[55, 40, 5])[0]
            rows.append({
                "item_code": f"{SERVICE_SECTIONS[place]}{place + 1:04d}{variant + 1:05d}0000",
                "former_code": f"S{n:05d}{variant:02d}",
                "item_name": f"{name}" + (f" (项目{variant + 1})" if variant else ""),
                "item_kind": "SERVICE",
                "item_class": cls,
                "self_pay_first_pct": yi_share if cls == "乙" else "0",
                "price_cap_yuan": f"{cap // 100}.{cap % 100:02d}",
                "over_cap_rule": "SELF_PAY",
                "essential_drug": "0",
            })
    for place, (name, low, high) in enumerate(MATERIALS, 1):
        for variant in range(20):
            n += 1
            cap = base.randint(low * 100, high * 100)
            rows.append({
                "item_code": f"C{place:02d}{variant // 10 + 1:02d}{n:06d}{variant + 1:04d}00001",
                "former_code": f"C{n:05d}{variant:02d}",
                "item_name": f"{name} (型号{variant + 1})",
                "item_kind": "MATERIAL",
                "item_class": "乙",
                "self_pay_first_pct": local.choice(["10", "20", "30"]),
                "price_cap_yuan": f"{cap // 100}.{cap % 100:02d}",
                "over_cap_rule": local.choice(["SELF_PAY", "HOSPITAL_ABSORBS"]),
                "essential_drug": "0",
            })
    return rows


def main() -> None:
    HERE.mkdir(exist_ok=True)
    for pool in POOLS:
        path = HERE / f"{pool}-{VERSION}.csv"
        rows = rows_for(pool)
        with path.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        print(f"{path}: {len(rows)} items")


if __name__ == "__main__":
    main()
