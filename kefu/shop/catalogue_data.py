"""The demo shop's product catalogue, as plain data.

Every product: the catalogue's own name (what the NLU normalises to), brand,
category, price in yuan, stock, warranty, whether it can be returned without
reason, a one-line description, sizes, colours, specs and the aliases
shoppers type. Out-of-stock items may carry `restock_days` (back in N days).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class CatalogueItem:
    name: str
    brand: str
    category: str
    price_yuan: float
    stock: int
    warranty_months: int
    returnable: bool
    description: str
    aliases: tuple[str, ...] = ()
    sizes: tuple[str, ...] = ()
    colors: tuple[str, ...] = ()
    specs: tuple[tuple[str, str], ...] = ()
    restock_days: int | None = None
    sku: str = field(default="")


CLOTHING_SIZES = ("S", "M", "L", "XL", "XXL")
SHOE_SIZES = ("38", "39", "40", "41", "42", "43", "44")
BRA_SIZES = ("70B", "75B", "75C", "80B", "80C")


def _phone(name, brand, price, stock, aliases, colors, screen, battery, chip, restock=None):
    return CatalogueItem(
        name,
        brand,
        "手机",
        price,
        stock,
        12,
        True,
        f"{brand}{name.replace(brand, '').strip() or name}，{chip}芯片，{screen}屏幕，{battery}大电池。",
        aliases,
        (),
        colors,
        (("屏幕", screen), ("电池", battery), ("处理器", chip), ("存储", "256GB")),
        restock,
    )


def _earphone(name, brand, price, stock, aliases, colors, battery, anc, restock=None):
    return CatalogueItem(
        name,
        brand,
        "耳机",
        price,
        stock,
        12,
        True,
        f"{name}，{'主动降噪，' if anc else ''}续航{battery}。",
        aliases,
        (),
        colors,
        (("续航", battery), ("降噪", "支持" if anc else "不支持"), ("连接", "蓝牙5.3")),
        restock,
    )


def _computer(name, brand, category, price, stock, aliases, cpu, memory, screen, weight, restock=None):
    return CatalogueItem(
        name,
        brand,
        category,
        price,
        stock,
        24 if category == "电脑" else 12,
        True,
        f"{name}，{cpu}，{memory}内存，{screen}屏幕，重{weight}。",
        aliases,
        (),
        ("深空灰", "银色"),
        (("处理器", cpu), ("内存", memory), ("屏幕", screen), ("重量", weight)),
        restock,
    )


def _clothing(name, brand, category, price, stock, aliases, colors, material, restock=None):
    return CatalogueItem(
        name,
        brand,
        category,
        price,
        stock,
        0,
        True,
        f"{name}，{material}面料，舒适百搭。",
        aliases,
        CLOTHING_SIZES,
        colors,
        (("面料", material), ("洗涤", "30度以下机洗")),
        restock,
    )


def _shoe(name, brand, price, stock, aliases, colors, use, restock=None):
    return CatalogueItem(
        name,
        brand,
        "鞋靴",
        price,
        stock,
        0,
        True,
        f"{name}，适合{use}，轻便透气。",
        aliases,
        SHOE_SIZES,
        colors,
        (("适用", use), ("鞋面", "网布")),
        restock,
    )


def _cosmetic(name, brand, price, stock, aliases, volume, returnable, effect, restock=None):
    return CatalogueItem(
        name,
        brand,
        "美妆",
        price,
        stock,
        0,
        returnable,
        f"{name}，{effect}。{'' if returnable else '个人护理用品，拆封后不支持无理由退货。'}",
        aliases,
        (),
        (),
        (("容量", volume), ("功效", effect)),
        restock,
    )


def _fresh(name, brand, price, stock, aliases, weight, origin, restock=None):
    return CatalogueItem(
        name,
        brand,
        "生鲜",
        price,
        stock,
        0,
        False,
        f"{name}，产地{origin}，冷链直发，生鲜商品不支持七天无理由退货。",
        aliases,
        (),
        (),
        (("规格", weight), ("产地", origin), ("储存", "冷藏")),
        restock,
    )


def _custom(name, brand, price, stock, aliases, what):
    return CatalogueItem(
        name,
        brand,
        "定制",
        price,
        stock,
        0,
        False,
        f"{name}，{what}，定制商品一经制作不支持无理由退货。",
        aliases,
        (),
        (),
        (("工期", "3-5个工作日"), ("定制内容", what)),
    )


def _appliance(name, brand, price, stock, aliases, power, feature, restock=None):
    return CatalogueItem(
        name,
        brand,
        "家电",
        price,
        stock,
        24,
        True,
        f"{name}，{feature}，整机保修两年。",
        aliases,
        (),
        ("白色",),
        (("功率", power), ("特点", feature)),
        restock,
    )


def _underwear(name, brand, price, stock, aliases, colors, sizes, material):
    return CatalogueItem(
        name,
        brand,
        "内衣",
        price,
        stock,
        0,
        False,
        f"{name}，{material}，贴身衣物出于卫生原因不支持无理由退货。",
        aliases,
        sizes,
        colors,
        (("面料", material),),
    )


PRODUCTS: tuple[CatalogueItem, ...] = (
    # 手机
    _phone(
        "小米14",
        "小米",
        3999,
        120,
        ("xiaomi14", "小米十四", "mi14"),
        ("黑色", "白色", "岩石青"),
        "6.36英寸",
        "4610mAh",
        "骁龙8 Gen3",
    ),
    _phone(
        "小米14 Pro",
        "小米",
        4999,
        35,
        ("小米14pro", "xiaomi14pro"),
        ("黑色", "白色"),
        "6.73英寸",
        "4880mAh",
        "骁龙8 Gen3",
    ),
    _phone(
        "小米13",
        "小米",
        2999,
        0,
        ("xiaomi13", "小米十三"),
        ("黑色", "白色", "远山蓝"),
        "6.36英寸",
        "4500mAh",
        "骁龙8 Gen2",
        10,
    ),
    _phone(
        "Redmi K70",
        "小米",
        2499,
        200,
        ("红米K70", "k70", "redmik70"),
        ("墨羽", "晴雪"),
        "6.67英寸",
        "5000mAh",
        "骁龙8 Gen2",
    ),
    _phone(
        "Redmi Note 13",
        "小米",
        1199,
        300,
        ("红米note13", "note13"),
        ("子夜黑", "星沙白"),
        "6.67英寸",
        "5000mAh",
        "天玑6080",
    ),
    _phone(
        "iPhone 15",
        "Apple",
        5999,
        80,
        ("苹果15", "iphone15", "苹果手机15", "爱疯15"),
        ("黑色", "蓝色", "粉色"),
        "6.1英寸",
        "3349mAh",
        "A16",
    ),
    _phone(
        "iPhone 15 Pro",
        "Apple",
        7999,
        40,
        ("苹果15pro", "iphone15pro", "15pro"),
        ("原色钛金属", "黑色钛金属"),
        "6.1英寸",
        "3274mAh",
        "A17 Pro",
    ),
    _phone(
        "iPhone 15 Pro Max",
        "Apple",
        9999,
        0,
        ("苹果15promax", "iphone15promax", "15promax"),
        ("原色钛金属", "白色钛金属"),
        "6.7英寸",
        "4422mAh",
        "A17 Pro",
        7,
    ),
    _phone("iPhone 14", "Apple", 4599, 60, ("苹果14", "iphone14"), ("午夜色", "星光色"), "6.1英寸", "3279mAh", "A15"),
    _phone(
        "华为Mate 60 Pro",
        "华为",
        6999,
        25,
        ("mate60pro", "华为mate60pro", "mate60 pro"),
        ("雅川青", "雅丹黑"),
        "6.82英寸",
        "5000mAh",
        "麒麟9000S",
    ),
    _phone(
        "华为Mate 60",
        "华为",
        5499,
        0,
        ("mate60", "华为mate60"),
        ("雅川青", "白沙银"),
        "6.69英寸",
        "4750mAh",
        "麒麟9000S",
    ),
    _phone("华为P60", "华为", 4488, 50, ("p60", "华为p60"), ("羽砂黑", "洛可可白"), "6.67英寸", "4815mAh", "骁龙8+"),
    _phone(
        "华为nova 12",
        "华为",
        2999,
        90,
        ("nova12", "华为nova12"),
        ("曜金黑", "樱语白"),
        "6.7英寸",
        "4600mAh",
        "麒麟8000",
    ),
    _phone(
        "荣耀Magic6",
        "荣耀",
        4399,
        70,
        ("magic6", "荣耀magic6", "honor magic6"),
        ("绒黑色", "祁连雪"),
        "6.78英寸",
        "5450mAh",
        "骁龙8 Gen3",
    ),
    _phone(
        "荣耀90", "荣耀", 2299, 150, ("荣耀90手机", "honor90"), ("亮黑色", "星钻银"), "6.7英寸", "5000mAh", "骁龙7 Gen1"
    ),
    _phone(
        "OPPO Find X7",
        "OPPO",
        3999,
        45,
        ("findx7", "oppo findx7", "oppofindx7"),
        ("星空黑", "海阔天空"),
        "6.78英寸",
        "5000mAh",
        "天玑9300",
    ),
    _phone(
        "OPPO Reno11",
        "OPPO",
        2499,
        110,
        ("reno11", "opporeno11"),
        ("月光宝石", "曜石黑"),
        "6.7英寸",
        "4800mAh",
        "天玑8200",
    ),
    _phone(
        "vivo X100", "vivo", 3999, 55, ("x100", "vivox100"), ("辰夜黑", "星迹蓝"), "6.78英寸", "5000mAh", "天玑9300"
    ),
    _phone(
        "vivo S18", "vivo", 2499, 0, ("s18", "vivos18"), ("花似锦", "玄黑"), "6.78英寸", "5000mAh", "骁龙7 Gen3", 20
    ),
    _phone(
        "一加12", "一加", 4299, 65, ("oneplus12", "一加十二"), ("岩黑", "留白"), "6.82英寸", "5400mAh", "骁龙8 Gen3"
    ),
    _phone(
        "三星Galaxy S24",
        "三星",
        5999,
        30,
        ("s24", "galaxys24", "三星s24"),
        ("水墨黑", "秘矿紫"),
        "6.2英寸",
        "4000mAh",
        "骁龙8 Gen3",
    ),
    _phone(
        "真我GT5",
        "真我",
        2699,
        85,
        ("realme gt5", "gt5", "真我gt5"),
        ("流银幻镜", "星雾紫"),
        "6.74英寸",
        "5240mAh",
        "骁龙8 Gen2",
    ),
    # 耳机
    _earphone(
        "AirPods Pro 2",
        "Apple",
        1899,
        150,
        ("airpods pro", "airpodspro2", "苹果耳机pro", "airpods pro2"),
        ("白色",),
        "6小时",
        True,
    ),
    _earphone("AirPods 3", "Apple", 1399, 90, ("airpods3", "苹果耳机", "airpods"), ("白色",), "6小时", False),
    _earphone(
        "AirPods Max",
        "Apple",
        4399,
        0,
        ("airpodsmax", "苹果头戴耳机"),
        ("深空灰", "银色", "天蓝色"),
        "20小时",
        True,
        14,
    ),
    _earphone(
        "华为FreeBuds Pro 3",
        "华为",
        1499,
        70,
        ("freebuds pro3", "freebudspro3", "华为耳机"),
        ("陶瓷白", "雅川青"),
        "6.5小时",
        True,
    ),
    _earphone(
        "小米Buds 4 Pro", "小米", 999, 100, ("小米耳机", "buds4pro", "小米buds4"), ("月影黑", "星耀金"), "9小时", True
    ),
    _earphone(
        "索尼WH-1000XM5",
        "索尼",
        2699,
        40,
        ("xm5", "1000xm5", "索尼降噪耳机", "sony xm5"),
        ("黑色", "铂金银"),
        "30小时",
        True,
    ),
    _earphone("索尼WF-1000XM5", "索尼", 1999, 0, ("wf1000xm5", "索尼豆"), ("黑色", "铂金银"), "8小时", True, 5),
    _earphone("Bose QC45", "Bose", 1899, 35, ("qc45", "bose耳机", "boseqc45"), ("黑色", "白烟色"), "24小时", True),
    _earphone("漫步者W820NB", "漫步者", 299, 260, ("w820nb", "漫步者耳机"), ("典雅灰", "雅白"), "49小时", True),
    _earphone("OPPO Enco X2", "OPPO", 999, 60, ("encox2", "oppo耳机"), ("凝霜白", "镜夜黑"), "6.5小时", True),
    _earphone("荣耀Earbuds X5", "荣耀", 299, 180, ("earbuds x5", "荣耀耳机"), ("白色", "黑色"), "9小时", False),
    # 电脑
    _computer(
        "MacBook Air 13英寸 M3",
        "Apple",
        "电脑",
        8999,
        30,
        ("macbook air", "mba", "苹果笔记本", "macbookair m3"),
        "Apple M3",
        "16GB",
        "13.6英寸",
        "1.24kg",
    ),
    _computer(
        "MacBook Pro 14英寸 M3 Pro",
        "Apple",
        "电脑",
        14999,
        12,
        ("macbook pro", "mbp", "macbookpro"),
        "Apple M3 Pro",
        "18GB",
        "14.2英寸",
        "1.61kg",
    ),
    _computer(
        "联想小新Pro 14",
        "联想",
        "电脑",
        5299,
        80,
        ("小新pro14", "小新", "联想小新"),
        "酷睿Ultra5",
        "32GB",
        "14英寸",
        "1.46kg",
    ),
    _computer(
        "联想拯救者Y9000P",
        "联想",
        "电脑",
        9999,
        0,
        ("拯救者", "y9000p", "拯救者y9000p"),
        "i9-14900HX",
        "16GB",
        "16英寸",
        "2.6kg",
        12,
    ),
    _computer(
        "ThinkPad X1 Carbon",
        "联想",
        "电脑",
        11999,
        15,
        ("x1 carbon", "thinkpad x1", "小黑"),
        "酷睿Ultra7",
        "32GB",
        "14英寸",
        "1.09kg",
    ),
    _computer(
        "华为MateBook X Pro",
        "华为",
        "电脑",
        10999,
        20,
        ("matebook x pro", "matebookxpro", "华为笔记本"),
        "酷睿Ultra7",
        "32GB",
        "14.2英寸",
        "980g",
    ),
    _computer(
        "戴尔XPS 13",
        "戴尔",
        "电脑",
        9499,
        18,
        ("xps13", "dell xps", "戴尔xps"),
        "酷睿Ultra7",
        "16GB",
        "13.4英寸",
        "1.19kg",
    ),
    _computer(
        "小米笔记本Pro 14",
        "小米",
        "电脑",
        5999,
        40,
        ("小米笔记本", "xiaomi book pro"),
        "i5-12450H",
        "16GB",
        "14英寸",
        "1.56kg",
    ),
    _computer("华硕天选5", "华硕", "电脑", 7499, 50, ("天选5", "天选"), "R9-8945H", "16GB", "16英寸", "2.3kg"),
    _computer(
        "惠普星Book Pro 14", "惠普", "电脑", 4999, 35, ("星book", "惠普星book"), "R7-8845H", "16GB", "14英寸", "1.39kg"
    ),
    # 平板
    _computer(
        "iPad Air 11英寸",
        "Apple",
        "平板",
        4799,
        45,
        ("ipad air", "ipadair", "苹果平板"),
        "Apple M2",
        "8GB",
        "11英寸",
        "462g",
    ),
    _computer(
        "iPad 10", "Apple", "平板", 2999, 120, ("ipad", "ipad10", "ipad第十代"), "A14", "4GB", "10.9英寸", "477g"
    ),
    _computer(
        "iPad Pro 11英寸", "Apple", "平板", 8999, 0, ("ipad pro", "ipadpro"), "Apple M4", "8GB", "11英寸", "444g", 9
    ),
    _computer(
        "小米平板6", "小米", "平板", 1999, 140, ("小米平板", "mi pad 6", "小米pad6"), "骁龙870", "8GB", "11英寸", "490g"
    ),
    _computer(
        "华为MatePad Pro",
        "华为",
        "平板",
        3999,
        60,
        ("matepad pro", "matepad", "华为平板"),
        "麒麟9000S",
        "12GB",
        "12.2英寸",
        "508g",
    ),
    _computer("荣耀平板9", "荣耀", "平板", 1499, 90, ("荣耀平板",), "骁龙6 Gen1", "8GB", "12.1英寸", "555g"),
    # 男装
    _clothing(
        "优衣库男士摇粒绒外套",
        "优衣库",
        "男装",
        199,
        300,
        ("摇粒绒外套", "摇粒绒"),
        ("黑色", "藏青色", "灰色"),
        "聚酯纤维",
    ),
    _clothing(
        "优衣库男士纯棉T恤",
        "优衣库",
        "男装",
        79,
        500,
        ("纯棉t恤", "优衣库t恤", "男士t恤"),
        ("白色", "黑色", "灰色"),
        "100%棉",
    ),
    _clothing(
        "优衣库男士轻型羽绒服",
        "优衣库",
        "男装",
        499,
        0,
        ("轻型羽绒服", "优衣库羽绒服"),
        ("黑色", "藏青色"),
        "白鸭绒",
        6,
    ),
    _clothing(
        "李宁男士运动卫衣", "李宁", "男装", 299, 150, ("李宁卫衣", "运动卫衣"), ("黑色", "白色", "红色"), "棉混纺"
    ),
    _clothing(
        "波司登男士羽绒服", "波司登", "男装", 1299, 60, ("波司登羽绒服", "波司登"), ("黑色", "深灰色"), "90%白鹅绒"
    ),
    _clothing("海澜之家男士衬衫", "海澜之家", "男装", 169, 220, ("海澜之家衬衫", "男士衬衫"), ("白色", "浅蓝色"), "棉"),
    _clothing(
        "杰克琼斯男士牛仔裤",
        "杰克琼斯",
        "男装",
        399,
        130,
        ("杰克琼斯牛仔裤", "男士牛仔裤"),
        ("深蓝色", "浅蓝色"),
        "棉弹力牛仔布",
    ),
    _clothing("安踏男士速干短裤", "安踏", "男装", 99, 260, ("速干短裤", "安踏短裤"), ("黑色", "灰色"), "聚酯纤维"),
    _clothing("太平鸟男士夹克", "太平鸟", "男装", 599, 45, ("太平鸟夹克", "男士夹克"), ("卡其色", "黑色"), "锦纶"),
    _clothing(
        "Nike男士运动T恤",
        "Nike",
        "男装",
        229,
        190,
        ("耐克t恤", "nike t恤", "耐克短袖"),
        ("黑色", "白色"),
        "Dri-FIT速干面料",
    ),
    # 女装
    _clothing(
        "优衣库女士羊毛开衫",
        "优衣库",
        "女装",
        299,
        140,
        ("羊毛开衫", "优衣库开衫"),
        ("米色", "黑色", "粉色"),
        "美利奴羊毛",
    ),
    _clothing("ONLY女士连衣裙", "ONLY", "女装", 499, 80, ("only连衣裙", "连衣裙"), ("黑色", "碎花"), "雪纺"),
    _clothing(
        "VERO MODA女士风衣",
        "VERO MODA",
        "女装",
        899,
        30,
        ("维莎曼风衣", "vero moda风衣", "女士风衣"),
        ("卡其色", "黑色"),
        "棉混纺",
    ),
    _clothing(
        "太平鸟女士毛衣", "太平鸟", "女装", 399, 0, ("太平鸟毛衣", "女士毛衣"), ("燕麦色", "酒红色"), "羊毛混纺", 8
    ),
    _clothing(
        "波司登女士长款羽绒服",
        "波司登",
        "女装",
        1599,
        50,
        ("波司登女款羽绒服", "长款羽绒服"),
        ("黑色", "米白色"),
        "90%白鹅绒",
    ),
    _clothing("ZARA女士西装外套", "ZARA", "女装", 599, 65, ("zara西装", "女士西装"), ("黑色", "米色"), "聚酯纤维"),
    _clothing("李宁女士瑜伽裤", "李宁", "女装", 199, 240, ("瑜伽裤", "李宁瑜伽裤"), ("黑色", "雾霾蓝"), "锦纶氨纶"),
    _clothing("伊芙丽女士半身裙", "伊芙丽", "女装", 359, 90, ("半身裙", "伊芙丽裙子"), ("黑色", "杏色"), "醋酸"),
    _clothing("优衣库女士纯棉T恤", "优衣库", "女装", 79, 400, ("女士t恤", "优衣库女款t恤"), ("白色", "粉色"), "100%棉"),
    _clothing("安踏女士运动外套", "安踏", "女装", 329, 110, ("安踏外套", "女士运动外套"), ("白色", "紫色"), "聚酯纤维"),
    # 鞋靴
    _shoe(
        "Nike Air Force 1",
        "Nike",
        799,
        120,
        ("空军一号", "af1", "耐克空军一号", "air force 1"),
        ("白色", "黑色"),
        "日常通勤",
    ),
    _shoe("Nike Air Max 270", "Nike", 1099, 0, ("airmax270", "耐克气垫鞋", "max270"), ("黑白", "全白"), "日常休闲", 12),
    _shoe(
        "Adidas Ultraboost 22",
        "Adidas",
        1299,
        60,
        ("ub22", "ultraboost", "阿迪跑鞋", "阿迪达斯ultraboost"),
        ("黑色", "白色"),
        "跑步",
    ),
    _shoe("Adidas Samba", "Adidas", 899, 90, ("samba", "阿迪桑巴", "德训鞋"), ("黑白", "白绿"), "日常休闲"),
    _shoe("李宁超轻21", "李宁", 399, 200, ("超轻21", "李宁跑鞋"), ("标准白", "黑色"), "跑步"),
    _shoe("安踏C37", "安踏", 299, 210, ("c37", "安踏跑鞋"), ("象牙白", "黑色"), "慢跑"),
    _shoe("回力帆布鞋", "回力", 89, 500, ("回力", "帆布鞋"), ("白色", "黑色"), "日常休闲"),
    _shoe("斯凯奇健步鞋", "斯凯奇", 459, 130, ("skechers", "斯凯奇"), ("灰色", "黑色"), "健步走"),
    _shoe("New Balance 574", "New Balance", 699, 75, ("nb574", "新百伦574"), ("灰色", "藏青色"), "日常休闲"),
    _shoe("UGG经典短靴", "UGG", 1599, 25, ("ugg", "ugg雪地靴", "雪地靴"), ("栗色", "黑色"), "冬季保暖"),
    _shoe("特步跑鞋160X", "特步", 899, 0, ("160x", "特步160x", "特步跑鞋"), ("白色", "荧光绿"), "竞速跑步", 15),
    # 美妆
    _cosmetic("兰蔻小黑瓶精华", "兰蔻", 1080, 80, ("小黑瓶", "兰蔻精华", "lancome小黑瓶"), "50ml", False, "修护肌底"),
    _cosmetic(
        "雅诗兰黛小棕瓶精华", "雅诗兰黛", 960, 70, ("小棕瓶", "雅诗兰黛精华", "estee小棕瓶"), "50ml", False, "修护抗老"
    ),
    _cosmetic("SK-II神仙水", "SK-II", 1540, 40, ("神仙水", "sk2神仙水", "skii神仙水"), "230ml", False, "调理肌肤"),
    _cosmetic("百雀羚水乳套装", "百雀羚", 299, 150, ("百雀羚", "百雀羚套装"), "2件套", True, "补水保湿"),
    _cosmetic("完美日记口红", "完美日记", 79, 300, ("完美日记", "完美日记唇膏"), "3.8g", True, "丝绒哑光"),
    _cosmetic("MAC子弹头口红", "MAC", 230, 0, ("mac口红", "子弹头", "魅可口红"), "3g", True, "经典正红", 4),
    _cosmetic("迪奥烈艳蓝金口红", "迪奥", 350, 60, ("迪奥口红", "dior口红"), "3.5g", True, "滋润显色"),
    _cosmetic("珀莱雅双抗精华", "珀莱雅", 359, 110, ("珀莱雅", "双抗精华"), "30ml", False, "抗氧抗糖"),
    _cosmetic("薇诺娜舒敏保湿特护霜", "薇诺娜", 268, 95, ("薇诺娜", "特护霜"), "50g", False, "舒缓敏感肌"),
    _cosmetic("花西子空气蜜粉", "花西子", 169, 130, ("花西子", "散粉", "蜜粉"), "8g", True, "控油定妆"),
    _cosmetic("欧莱雅男士洗面奶", "欧莱雅", 69, 260, ("欧莱雅洗面奶", "男士洗面奶"), "100ml", True, "控油清洁"),
    # 生鲜
    _fresh("褚橙冰糖橙5斤装", "褚橙", 88, 200, ("褚橙", "冰糖橙"), "5斤", "云南"),
    _fresh("智利车厘子2斤装", "佳沛鲜选", 199, 0, ("车厘子", "樱桃"), "2斤", "智利", 3),
    _fresh("阳澄湖大闸蟹礼盒", "阳澄湖", 599, 40, ("大闸蟹", "螃蟹"), "8只装", "江苏"),
    _fresh("内蒙古羔羊肉卷", "草原鲜", 79, 150, ("羊肉卷", "羊肉"), "1kg", "内蒙古"),
    _fresh("新西兰佳沛奇异果", "佳沛鲜选", 129, 120, ("奇异果", "猕猴桃", "佳沛"), "22个", "新西兰"),
    _fresh("东北五常大米", "五常", 99, 300, ("五常大米", "大米"), "5kg", "黑龙江"),
    _fresh("烟台红富士苹果", "烟台", 59, 220, ("红富士", "烟台苹果"), "5斤", "山东"),
    _fresh("海南贵妃芒", "热带果园", 69, 0, ("贵妃芒", "芒果"), "5斤", "海南", 5),
    _fresh("三只松鼠每日坚果", "三只松鼠", 129, 260, ("每日坚果", "三只松鼠坚果"), "30袋", "安徽"),
    _fresh("厄瓜多尔白虾", "海鲜工坊", 159, 80, ("白虾", "冻虾"), "2kg", "厄瓜多尔"),
    # 定制
    _custom("定制刻字保温杯", "匠心定制", 129, 300, ("刻字保温杯", "定制保温杯"), "杯身刻字"),
    _custom("定制照片抱枕", "匠心定制", 99, 300, ("照片抱枕", "定制抱枕"), "印制照片"),
    _custom("定制姓名项链", "周大福", 1299, 50, ("姓名项链", "定制项链"), "刻姓名拼音"),
    _custom("定制手机壳", "匠心定制", 59, 500, ("定制手机壳", "diy手机壳"), "印制图案"),
    _custom("定制T恤印字", "匠心定制", 89, 400, ("定制t恤", "印字t恤", "班服"), "印文字或图案"),
    _custom("定制婚礼请柬", "匠心定制", 199, 200, ("请柬", "婚礼请柬"), "印新人姓名和日期"),
    _custom("定制钢笔刻字", "英雄", 299, 120, ("钢笔刻字", "定制钢笔"), "笔身刻字"),
    _custom("定制拼图", "匠心定制", 79, 300, ("照片拼图", "定制拼图"), "照片做成拼图"),
    _custom("定制宠物画像", "匠心定制", 259, 80, ("宠物画像", "宠物定制"), "手绘宠物肖像"),
    _custom("定制实木相框", "匠心定制", 149, 150, ("实木相框", "定制相框"), "刻字相框"),
    # 家电
    _appliance("戴森V12吸尘器", "戴森", 4490, 30, ("戴森吸尘器", "dyson v12", "v12"), "150W", "激光探测微尘"),
    _appliance("戴森吹风机HD15", "戴森", 3199, 0, ("戴森吹风机", "hd15", "dyson吹风机"), "1600W", "智能温控", 7),
    _appliance("美的电饭煲", "美的", 399, 160, ("美的电饭锅", "电饭煲"), "860W", "IH电磁加热"),
    _appliance("格力空调云佳1.5匹", "格力", 2899, 40, ("格力空调", "云佳"), "1.5匹", "新一级能效"),
    _appliance("小米扫地机器人", "小米", 1999, 75, ("扫地机器人", "米家扫地机"), "40W", "扫拖一体"),
    _appliance("九阳豆浆机", "九阳", 499, 120, ("豆浆机", "九阳破壁机"), "1000W", "免滤破壁"),
    _appliance("飞利浦电动牙刷", "飞利浦", 599, 140, ("电动牙刷", "飞利浦牙刷", "钻石亮白"), "1.4W", "声波清洁"),
    _appliance("苏泊尔电压力锅", "苏泊尔", 359, 90, ("压力锅", "苏泊尔"), "1000W", "一锅双胆"),
    _appliance("海尔冰箱BCD-470", "海尔", 3699, 20, ("海尔冰箱", "冰箱"), "470升", "风冷无霜"),
    _appliance("米家空气净化器4", "小米", 899, 110, ("空气净化器", "米家净化器"), "48W", "除甲醛"),
    # 内衣（贴身）
    _underwear(
        "优衣库AIRism内裤",
        "优衣库",
        79,
        300,
        ("airism内裤", "优衣库内裤"),
        ("黑色", "灰色"),
        CLOTHING_SIZES,
        "AIRism凉感面料",
    ),
    _underwear("内外无钢圈文胸", "内外", 329, 120, ("内外文胸", "无钢圈内衣"), ("肤色", "黑色"), BRA_SIZES, "棉氨纶"),
    _underwear("猫人保暖内衣套装", "猫人", 159, 200, ("保暖内衣", "猫人"), ("黑色", "肤色"), CLOTHING_SIZES, "德绒"),
    _underwear("蕉内男士内裤", "蕉内", 99, 260, ("蕉内", "蕉内内裤"), ("黑色", "蓝色"), CLOTHING_SIZES, "莫代尔"),
    _underwear("Ubras无尺码内衣", "Ubras", 139, 180, ("ubras", "无尺码内衣"), ("肤色", "黑色"), ("均码",), "莫代尔"),
    _underwear(
        "南极人纯棉袜子10双装", "南极人", 39, 500, ("袜子", "南极人袜子"), ("黑色", "白色"), ("均码",), "精梳棉"
    ),
    _underwear("爱慕睡衣套装", "爱慕", 499, 60, ("爱慕睡衣", "睡衣"), ("粉色", "灰色"), CLOTHING_SIZES, "真丝"),
    _underwear("三枪男士背心", "三枪", 59, 240, ("三枪背心", "背心"), ("白色", "黑色"), CLOTHING_SIZES, "纯棉"),
    _underwear("恒源祥羊毛袜", "恒源祥", 69, 210, ("羊毛袜", "恒源祥袜子"), ("灰色", "藏青色"), ("均码",), "羊毛"),
    _underwear("都市丽人文胸", "都市丽人", 129, 0, ("都市丽人", "文胸"), ("肤色", "粉色"), BRA_SIZES, "蕾丝"),
)

CATEGORY_SKU_PREFIX = {
    "手机": "PH",
    "耳机": "EP",
    "电脑": "PC",
    "平板": "TB",
    "男装": "MC",
    "女装": "WC",
    "鞋靴": "SH",
    "美妆": "CS",
    "生鲜": "FR",
    "定制": "CU",
    "家电": "HA",
    "内衣": "UW",
}


def catalogue() -> list[CatalogueItem]:
    """The products with deterministic SKUs (category prefix + running number)."""
    counters: dict[str, int] = {}
    items = []
    for item in PRODUCTS:
        prefix = CATEGORY_SKU_PREFIX[item.category]
        counters[prefix] = counters.get(prefix, 0) + 1
        items.append(
            CatalogueItem(
                **{**item.__dict__, "sku": f"{prefix}{counters[prefix]:04d}", "price_yuan": float(item.price_yuan)}
            )
        )
    return items
